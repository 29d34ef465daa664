// `node --import ./module-trace.mjs …` records which modules a run loads (see module-trace-hooks.mjs).
import { register } from 'node:module';

register('./module-trace-hooks.mjs', import.meta.url);
