import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
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
/** Addresses remembered per process (a few MB at most). */
const GEO_CACHE_SIZE = 20_000;

/**
 * Addresses that name no place: private, shared (carrier NAT), loopback, link-local, multicast
 * and reserved ranges. Whois-derived databases give some of them a country (the bundled one
 * puts 192.168.0.0/16 in AU), which a visitor behind a proxy that forwards no address would get.
 */
function nowhere(): BlockList {
  const list = new BlockList();
  const v4: [string, number][] = [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
    ['224.0.0.0', 3],
  ];
  for (const [net, prefix] of v4) list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of [
    ['::', 127],
    ['fc00::', 7],
    ['fe80::', 10],
    ['ff00::', 8],
  ] as const)
    list.addSubnet(net, prefix, 'ipv6');
  return list;
}

/** The bundled CC0 country database. */
export function defaultGeoDatabasePath(): string {
  return createRequire(import.meta.url).resolve('@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb');
}

/** What the record layouts this reader knows may hold. */
export interface GeoRecord {
  country_code?: unknown;
  state1?: unknown;
  country?: { iso_code?: unknown };
  subdivisions?: { iso_code?: unknown }[];
}

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

/** The place a record of one of the known layouts names. */
export function placeOfRecord(record: GeoRecord | null): Place {
  if (record === null) return UNKNOWN;
  const country = text(record.country_code) ?? text(record.country?.iso_code);
  if (country === undefined || !/^[A-Za-z]{2}$/.test(country)) return UNKNOWN;
  const subdivision = text(record.subdivisions?.[0]?.iso_code);
  const region = subdivision !== undefined ? `${country.toUpperCase()}-${subdivision}` : text(record.state1);
  return { country: country.toUpperCase(), region };
}

/**
 * Reads the MMDB file once (a few MB, kept in memory: a lookup is a walk of its tree) and answers lookups from it. Addresses that name no place, or that the database
 * cannot place, and malformed text are unknown, never an error: a bad address must not stop a batch.
 */
export function openGeoDatabase(path: string = defaultGeoDatabasePath()): GeoLookup {
  const reader = new Reader<Response>(readFileSync(path));
  const unplaced = nowhere();
  const lookUp = (ip: string): Place => {
    // Node reports IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d.
    const address = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    if (family === undefined || unplaced.check(address, family)) return UNKNOWN;
    return placeOfRecord(reader.get(address) as GeoRecord | null);
  };
  // A visitor sends several events from one address; the walk and its checks cost more than
  // enriching the rest of an event, so recent addresses are remembered (in this process only).
  const recent = new Map<string, Place>();
  return (ip) => {
    let place = recent.get(ip);
    if (place) return place;
    place = lookUp(ip);
    if (recent.size >= GEO_CACHE_SIZE) recent.clear();
    recent.set(ip, place);
    return place;
  };
}
