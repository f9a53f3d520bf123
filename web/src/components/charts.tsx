// Hand-written SVG charts: no style injection, no eval, a few KB.
import { useMemo, useState } from 'react';

export interface Series {
  name: string;
  colour: string; // a Tailwind stroke class, e.g. "stroke-teal-500"
  points: { t: number; v: number | null | undefined }[];
}

function extent(series: Series[], fixedMax?: number) {
  let t0 = Infinity,
    t1 = -Infinity,
    max = fixedMax ?? 0;
  for (const s of series)
    for (const p of s.points) {
      if (p.t < t0) t0 = p.t;
      if (p.t > t1) t1 = p.t;
      if (fixedMax === undefined && p.v != null && p.v > max) max = p.v;
    }
  if (!Number.isFinite(t0)) {
    t1 = Date.now();
    t0 = t1 - 3600_000;
  }
  if (t1 === t0) t0 = t1 - 60_000;
  return { t0, t1, max: max || 1 };
}

function path(points: Series['points'], x: (t: number) => number, y: (v: number) => number) {
  let d = '';
  let pen = false;
  for (const p of points) {
    if (p.v == null) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
    pen = true;
  }
  return d;
}

const hhmm = (t: number) => {
  const d = new Date(t);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
};

export function LineChart({
  series,
  height = 160,
  max,
  format = (v) => v.toFixed(0),
  label,
}: {
  series: Series[];
  height?: number;
  max?: number;
  format?: (v: number) => string;
  label: string;
}) {
  const W = 600;
  const H = height;
  const pad = { l: 62, r: 8, t: 8, b: 20 };
  const { t0, t1, max: vmax } = useMemo(() => extent(series, max), [series, max]);
  const x = (t: number) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
  const y = (v: number) => H - pad.b - (Math.min(v, vmax) / vmax) * (H - pad.t - pad.b);
  const [hover, setHover] = useState<number | null>(null);
  const ticks = [0, 0.5, 1].map((f) => f * vmax);
  const hoverT = hover == null ? null : t0 + ((hover - pad.l) / (W - pad.l - pad.r)) * (t1 - t0);
  const nearest = (s: Series) => {
    if (hoverT == null || !s.points.length) return null;
    let best = s.points[0];
    for (const p of s.points) if (Math.abs(p.t - hoverT) < Math.abs(best.t - hoverT)) best = p;
    return best;
  };
  return (
    <figure className="w-full" aria-label={label}>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        className="h-auto w-full select-none"
        role="img"
        onMouseMove={(e) => {
          const r = (e.currentTarget as SVGSVGElement).getBoundingClientRect();
          const px = ((e.clientX - r.left) / r.width) * W;
          setHover(px >= pad.l && px <= W - pad.r ? px : null);
        }}
        onMouseLeave={() => setHover(null)}
      >
        {ticks.map((v) => (
          <g key={v}>
            <line x1={pad.l} x2={W - pad.r} y1={y(v)} y2={y(v)} className="stroke-slate-200 dark:stroke-slate-800" strokeWidth={1} />
            <text x={pad.l - 6} y={y(v) + 3} textAnchor="end" className="fill-slate-500 text-[10px]">
              {format(v)}
            </text>
          </g>
        ))}
        <text x={pad.l} y={H - 5} className="fill-slate-500 text-[10px]">
          {hhmm(t0)}
        </text>
        <text x={W - pad.r} y={H - 5} textAnchor="end" className="fill-slate-500 text-[10px]">
          {hhmm(t1)}
        </text>
        {series.map((s) => (
          <path key={s.name} d={path(s.points, x, y)} fill="none" strokeWidth={1.75} strokeLinejoin="round" className={s.colour} />
        ))}
        {hover != null && <line x1={hover} x2={hover} y1={pad.t} y2={H - pad.b} className="stroke-slate-400" strokeDasharray="3 3" />}
      </svg>
      <figcaption className="mt-1 flex flex-wrap gap-x-4 gap-y-1 text-xs text-slate-500">
        {series.map((s) => {
          const p = hover != null ? nearest(s) : s.points.at(-1);
          return (
            <span key={s.name} className="inline-flex items-center gap-1.5">
              <svg width="10" height="10" aria-hidden>
                <line x1="0" x2="10" y1="5" y2="5" strokeWidth="3" className={s.colour} />
              </svg>
              {s.name}: <span className="font-mono text-slate-700 dark:text-slate-200" data-series={s.name}>{p?.v != null ? format(p.v) : '—'}</span>
              {hover != null && p && <span className="text-slate-400">at {hhmm(p.t)}</span>}
            </span>
          );
        })}
      </figcaption>
    </figure>
  );
}

export function Sparkline({ values, className, max }: { values: (number | null | undefined)[]; className?: string; max?: number }) {
  const W = 120;
  const H = 32;
  const vmax = max ?? Math.max(1, ...values.filter((v): v is number => v != null));
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const d = values
    .map((v, i) => (v == null ? null : `${i * step},${H - 2 - (Math.min(v, vmax) / vmax) * (H - 4)}`))
    .filter(Boolean)
    .map((p, i) => `${i ? 'L' : 'M'}${p}`)
    .join('');
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="h-8 w-full" preserveAspectRatio="none" aria-hidden>
      <path d={d} fill="none" strokeWidth={1.5} className={className ?? 'stroke-teal-500'} vectorEffect="non-scaling-stroke" />
    </svg>
  );
}
