import type { TestProject } from 'vitest/node';
import { findChromium } from './chromium.ts';

/**
 * Runs once before any test file: finds the Chromium the browser tests drive (unpacking the one
 * @sparticuz/chromium ships when the machine has none) and hands it to the test processes, so two
 * test files never unpack it at the same time.
 */
export default async function setup(project: TestProject): Promise<void> {
  project.provide('chromium', await findChromium());
}
