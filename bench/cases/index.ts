import type { BenchCase } from '../lib/bench-case.js';
import { cacheHitCase } from './cache-hit.js';
import { mixedRepoCase } from './mixed-repo.js';
import { peakRssCase } from './peak-rss.js';
import { pullThroughCase } from './pull-through.js';
import { resumeCase } from './resume.js';
import { servingCase } from './serving.js';
import { syncCase } from './sync.js';
import { throttledCase } from './throttled.js';
import { unthrottledCase } from './unthrottled.js';
import { verifyCase } from './verify.js';
import { inspectCase } from './inspect.js';
import { convertCase } from './convert.js';
import { xetCase } from './xet.js';
import { httpClientCase } from './http-client.js';
import { swarmCase } from './swarm.js';

/** Every case, in the order `npm run bench` runs them (rss reads the two download cases, so it follows them). */
export const allCases: BenchCase[] = [throttledCase, unthrottledCase, peakRssCase, resumeCase, mixedRepoCase, cacheHitCase, servingCase, pullThroughCase, verifyCase, syncCase, inspectCase, convertCase, xetCase, httpClientCase, swarmCase];
