import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv4, isIPv6 } from 'node:net';
import { Reader, type Response } from 'mmdb-lib';

// Where a visitor's address is: looked up in the processor from an offline IP database, so
// collection stays cheap and no request leaves the machine. The address itself is never kept:
// only the country (and region, where the database has one) goes on with the event.
//
// The default database is @ip-location-db/geo-whois-asn-country-mmdb (CC0; its NRO part asks
// for attribution, see docs/collect.md): countries only, so region stays unknown. Any MMDB file
// can be named instead (TALLY_GEOIP_DATABASE): MaxMind's GeoLite2/GeoIP2 City or Country
// layout, or ip-location-db's city layout (DB-IP lite); region is read where the file has one.

export interface Place {
  /** ISO 3166-1 alpha-2, upper case. */
  country: string | undefined;
  /** ISO 3166-2 subdivision code (MaxMind layout) or the subdivision's name (ip-location-db city layout). */
  region: string | undefined;
}

/** The place of an IP address (v4 or v6); unknown parts undefined. */
export type GeoLookup = (ip: string) => Place;

const UNKNOWN: Place = { country: undefined, region: undefined };

/** The bundled CC0 country database. */
export function defaultGeoDatabasePath(): string {
  return createRequire(import.meta.url).resolve('@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb');
}

/** What the record layouts this reader knows may hold. */
interface GeoRecord {
  country_code?: unknown;
  state1?: unknown;
  country?: { iso_code?: unknown };
  subdivisions?: { iso_code?: unknown }[];
}

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

function placeOf(record: GeoRecord | null): Place {
  if (record === null) return UNKNOWN;
  const country = text(record.country_code) ?? text(record.country?.iso_code);
  if (country === undefined || !/^[A-Za-z]{2}$/.test(country)) return UNKNOWN;
  const subdivision = text(record.subdivisions?.[0]?.iso_code);
  const region = subdivision !== undefined ? `${country.toUpperCase()}-${subdivision}` : text(record.state1);
  return { country: country.toUpperCase(), region };
}

/**
 * Reads the MMDB file once (a few MB, kept in memory: lookups are a walk of its tree, a few
 * microseconds) and answers lookups from it. Addresses the database cannot place (private
 * ranges, malformed text) are unknown, never an error: a bad address must not stop a batch.
 */
export function openGeoDatabase(path: string = defaultGeoDatabasePath()): GeoLookup {
  const reader = new Reader<Response>(readFileSync(path));
  return (ip) => {
    // Node reports IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d.
    const address = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
    if (!isIPv4(address) && !isIPv6(address)) return UNKNOWN;
    return placeOf(reader.get(address) as GeoRecord | null);
  };
}
