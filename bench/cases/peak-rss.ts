import { limitCheck, type BenchCase } from '../lib/bench-case.js';

/** Case 3: modelfetch's peak RSS in the two download cases (read from --json, else /proc VmHWM). */
export const peakRssCase: BenchCase = {
  id: 'rss',
  title: 'Peak RSS of modelfetch in the throttled and unthrottled cases',
  unavailable: (ctx) => {
    const ran = ['throttled', 'unthrottled'].filter((id) => ctx.outcomes.get(id)?.status === 'ran');
    return ran.length ? undefined : 'needs the throttled or unthrottled case in the same run';
  },
  async run(ctx, report) {
    for (const id of ['throttled', 'unthrottled']) {
      const rss = ctx.outcomes.get(id)?.measurements.find((m) => m.label === 'modelfetch peak RSS');
      if (!rss) continue;
      report.measurements.push({ label: `peak RSS in ${id}`, value: rss.value, unit: 'MB' });
      report.checks.push(limitCheck(`peak RSS in ${id}`, rss.value, 'MB', '≤', 200));
    }
  },
};
