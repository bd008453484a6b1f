import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

// Debian's Chromium for the browser tests (never a downloaded browser). Outside CI a machine
// without it skips those tests with a note; in CI (CI=true) they run and fail if it is missing.

const CHROMIUM = '/usr/bin/chromium';
const IN_CI = process.env['CI'] === 'true';
const HAS_CHROMIUM = existsSync(CHROMIUM);

/** True when a file's browser tests should be skipped here (says so once per file). */
export function skipWithoutChromium(file: string): boolean {
  if (HAS_CHROMIUM || IN_CI) return false;
  process.stderr.write(`${file}: ${CHROMIUM} is missing, browser tests skipped (apt-get install -y chromium).\n`);
  return true;
}

/** Headless Chromium with the flags this closed network needs (no background connections). */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  if (!HAS_CHROMIUM) throw new Error(`${CHROMIUM} is missing: CI must install it (apt-get install -y chromium).`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}
