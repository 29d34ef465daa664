import type { CaseOutcome, Check, Measurement } from './bench-case.js';

/** The table `npm run bench` prints: every measurement, then every target with PASS/FAIL. */

function formatValue(value: number, unit: Measurement['unit'] | Check['unit']): string {
  switch (unit) {
    case 'x':
      return `${value.toFixed(2)}x`;
    case 's':
      return `${value.toFixed(2)} s`;
    case 'ms':
      return `${value.toFixed(0)} ms`;
    case 'MB':
      return `${value.toFixed(1)} MB`;
    case 'MB/s':
      return `${value.toFixed(0)} MB/s`;
    case 'bytes':
      return `${Math.round(value)} B`;
    case 'count':
      return String(Math.round(value));
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function renderReport(outcomes: CaseOutcome[], header: string): string {
  const lines: string[] = [header, ''];
  const rows: string[][] = [['case', 'measurement', 'value']];
  for (const o of outcomes) {
    if (o.status !== 'ran') {
      rows.push([o.id, `${o.status}: ${(o.reason ?? '').split('\n')[0]}`, '']);
      continue;
    }
    for (const m of o.measurements) rows.push([o.id, m.label, formatValue(m.value, m.unit)]);
  }
  lines.push(table(rows), '');
  const checks: string[][] = [['case', 'target', 'measured', 'wanted', 'result']];
  for (const o of outcomes) {
    for (const c of o.checks) checks.push([o.id, c.label, formatValue(c.actual, c.unit), c.target, c.pass ? 'PASS' : 'FAIL']);
  }
  if (checks.length > 1) lines.push(table(checks), '');
  const notes = outcomes.flatMap((o) => o.notes.map((n) => `  ${o.id}: ${n}`));
  if (notes.length) lines.push('notes:', ...notes, '');
  return lines.join('\n');
}

/** A table cell: a `|` in a label would end the cell. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** The same figures as a Markdown table (`.bench/results.md`), for the README's "Measured figures". */
export function renderMarkdown(outcomes: CaseOutcome[]): string {
  const lines = ['| case | measurement | value | target | result |', '| --- | --- | --- | --- | --- |'];
  for (const o of outcomes) {
    if (o.status !== 'ran') {
      lines.push(`| ${o.id} | ${o.status}: ${cell((o.reason ?? '').split('\n')[0] ?? '')} | | | |`);
      continue;
    }
    for (const m of o.measurements) lines.push(`| ${o.id} | ${cell(m.label)} | ${formatValue(m.value, m.unit)} | | |`);
    for (const c of o.checks) lines.push(`| ${o.id} | **${cell(c.label)}** | ${formatValue(c.actual, c.unit)} | ${c.target} | ${c.pass ? 'PASS' : 'FAIL'} |`);
  }
  return `${lines.join('\n')}\n`;
}
