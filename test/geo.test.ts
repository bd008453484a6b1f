import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { defaultGeoDatabasePath, openGeoDatabase, placeOfRecord } from '../src/process/geo.js';

// Country lookup in the bundled CC0 database (@ip-location-db/geo-whois-asn-country-mmdb). The
// addresses and their countries were read from the database file itself (mmdb-lib's Reader on
// geo-whois-asn-country.mmdb, build 2026-06-17): well-known, long-held allocations, so a newer
// build answers the same.

describe('geo lookup', () => {
  const geo = openGeoDatabase();

  it('places IPv4 and IPv6 addresses from the database in their country, region unknown', () => {
    expect(geo('8.8.8.8')).toEqual({ country: 'US', region: undefined });
    expect(geo('1.1.1.1')).toEqual({ country: 'AU', region: undefined });
    expect(geo('81.2.69.160')).toEqual({ country: 'GB', region: undefined });
    expect(geo('193.0.0.1')).toEqual({ country: 'NL', region: undefined });
    expect(geo('2001:4860:4860::8888')).toEqual({ country: 'US', region: undefined });
  });

  it('reads an IPv4 client of a dual-stack socket (::ffff:a.b.c.d) as the IPv4 address', () => {
    expect(geo('::ffff:81.2.69.160').country).toBe('GB');
  });

  it('leaves private, loopback and malformed addresses unknown, without an error', () => {
    for (const ip of [
      '127.0.0.1',
      '10.0.0.1',
      '192.168.1.1',
      '172.20.0.5',
      '100.64.1.1',
      '169.254.1.1',
      '::1',
      'fd00::1',
      'fe80::1',
      '::ffff:192.168.1.1',
      '',
      'not-an-ip',
      '999.1.1.1',
      '8.8.8.8, 1.1.1.1',
    ]) {
      expect(geo(ip)).toEqual({ country: undefined, region: undefined });
    }
  });

  it('reads the region where a database layout has one', () => {
    // MaxMind's City layout: ISO 3166-2 (country + subdivision code).
    expect(placeOfRecord({ country: { iso_code: 'US' }, subdivisions: [{ iso_code: 'CA' }] })).toEqual({ country: 'US', region: 'US-CA' });
    expect(placeOfRecord({ country: { iso_code: 'DE' } })).toEqual({ country: 'DE', region: undefined });
    // ip-location-db's city layout (DB-IP lite): the subdivision's name.
    expect(placeOfRecord({ country_code: 'fr', state1: 'Île-de-France' })).toEqual({ country: 'FR', region: 'Île-de-France' });
    // Not a country code: nothing is taken from the record.
    expect(placeOfRecord({ country_code: 'ZZZ', state1: 'x' })).toEqual({ country: undefined, region: undefined });
    expect(placeOfRecord(null)).toEqual({ country: undefined, region: undefined });
  });

  it('opens the database a setting names, and fails at start on a missing file', () => {
    const named = loadConfig({ TALLY_GEOIP_DATABASE: defaultGeoDatabasePath() }).geoipDatabase;
    expect(openGeoDatabase(named)('1.1.1.1').country).toBe('AU');
    expect(loadConfig({}).geoipDatabase).toBeUndefined();
    expect(() => openGeoDatabase('/nonexistent/geo.mmdb')).toThrow(/ENOENT/);
  });
});
