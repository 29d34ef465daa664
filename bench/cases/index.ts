import type { BenchCase } from '../lib/bench-case.js';
import { peakRssCase } from './peak-rss.js';
import { resumeCase } from './resume.js';
import { servingCase } from './serving.js';
import { throttledCase } from './throttled.js';
import { unthrottledCase } from './unthrottled.js';
import { verifyCase } from './verify.js';

/** Every case, in the order `npm run bench` runs them (rss reads the two download cases, so it follows them). */
export const allCases: BenchCase[] = [throttledCase, unthrottledCase, peakRssCase, resumeCase, servingCase, verifyCase];
