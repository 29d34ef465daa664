#!/usr/bin/env node
// Entry for running from source (tests, npm start) without a build.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
