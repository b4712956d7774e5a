// One Markdown table set for experiments/ssl-compare.sh: Dice, ASSD and HD95 per organ and mean on
// the held-out series for each initialisation, and what each pretraining and fine-tuning did.
// Usage: node experiments/ssl-compare-table.mjs OUT INIT...   (reads OUT/eval-INIT/metrics.json,
// OUT/pretrain-INIT/metrics.jsonl and OUT/finetune-INIT/metrics.jsonl)
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';

const [out, ...inits] = process.argv.slice(2);
if (out === undefined || inits.length === 0) { console.error('usage: ssl-compare-table.mjs OUT INIT...'); process.exit(2); }
const fmt = (v, d) => (v === null || v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(d));
const endOf = (file) => {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return { end: lines.filter((r) => r.event === 'end').at(-1) ?? null, valid: lines.filter((r) => r.event === 'valid') };
};

const reports = inits.map((i) => {
  const f = path.join(out, `eval-${i}`, 'metrics.json');
  if (!existsSync(f)) { console.error(`ssl-compare-table: missing ${f}`); process.exit(1); }
  return JSON.parse(readFileSync(f, 'utf8'));
});
const classes = reports[0].settings.classes.map((c) => c.name);
const lines = [];
for (const [metric, digits, unit] of [['dice', 3, ''], ['assd', 2, ' (mm)'], ['hd95', 1, ' (mm)']]) {
  lines.push(`### ${metric.toUpperCase()}${unit} on the held-out series 02`, '');
  lines.push(`| init | ${classes.join(' | ')} | mean |`, `|---|${classes.map(() => '---|').join('')}---|`);
  reports.forEach((r, k) => {
    const c = r.cases[0];
    const vals = classes.map((n) => fmt(c.classes[n]?.[metric], digits));
    lines.push(`| ${inits[k]} | ${vals.join(' | ')} | ${fmt(c.average?.[metric], digits)} |`);
  });
  lines.push('');
}
lines.push('### Runs', '', '| init | pretraining: iterations, s/it, data wait, best validation (iteration) | fine-tuning: iterations, s/it, last loss |', '|---|---|---|');
for (const i of inits) {
  const p = endOf(path.join(out, `pretrain-${i}`, 'metrics.jsonl'));
  const f = endOf(path.join(out, `finetune-${i}`, 'metrics.jsonl'));
  let pre = 'none';
  if (p?.end) {
    const b = p.end.best;
    // What each method validates on the held-out head CT (its best-checkpoint score).
    const what = i === 'volf' ? 'pseudo-Dice' : i === 'voco' ? 'VoCo loss' : 'L1';
    const score = b === null ? 'n/a' : `${what} ${fmt(i === 'volf' ? b.score : -b.score, 4)} (${b.iteration})`;
    const lastValid = p.valid.at(-1);
    const floor = i !== 'volf' && lastValid?.identityMae !== undefined ? `; L1 of the corrupted input ${fmt(lastValid.identityMae, 4)}` : '';
    pre = `${p.end.iterations}, ${fmt(p.end.secondsPerIteration, 2)}, ${fmt(100 * p.end.dataWaitFraction, 1)} %, ${score}${floor}`;
  }
  const ft = f?.end ? `${f.end.iterations}, ${fmt(f.end.secondsPerIteration, 2)}, ${fmt(f.end.lastLoss, 4)}` : 'n/a';
  lines.push(`| ${i} | ${pre} | ${ft} |`);
}
process.stdout.write(lines.join('\n') + '\n');
