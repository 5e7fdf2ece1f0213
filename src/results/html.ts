import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { renderChartSvg, reportCharts, type ChartSpec } from './charts.ts';
import type { Report } from './report.ts';
import { reportTables, type Cell, type Table } from './tables.ts';

/**
 * A self-contained HTML report: the tables and every chart as inline SVG drawn on the server. No
 * script, no stylesheet or font to fetch: it opens offline and prints as it shows.
 */
export async function renderHtmlReport(report: Report, options: { generatedAt?: Date } = {}): Promise<string> {
  const charts = reportCharts(report);
  const svgs = await Promise.all(charts.map(renderChartSvg));
  const title = report.kind === 'run' ? `${report.name} · run ${report.runId}` : `${report.name} · sweep ${report.sweepId}`;
  const generated = (options.generatedAt ?? new Date()).toISOString();

  const sweepRuns =
    report.kind === 'sweep'
      ? report.points.map((p) => `<li>${escape(p.label)}: ${p.runId ? `<code>${escape(p.runId)}</code>` : 'not run'}</li>`).join('')
      : '';
  const body = [
    `<h1>${escape(title)}</h1>`,
    `<p class="meta">Created ${escape(report.createdAt)} · report generated ${escape(generated)} by lockstep</p>`,
    report.kind === 'sweep' ? `<ul class="points">${sweepRuns}</ul>` : '',
    ...reportTables(report).map(tableHtml),
    ...charts.map((chart, i) => chartHtml(chart, svgs[i]!)),
  ].join('\n');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; color: #1d232a; margin: 2rem auto; max-width: 960px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 0.5rem; }
.meta { color: #5c6670; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e1e4e8; text-align: left; white-space: nowrap; }
th.num, td.num { text-align: right; }
.ci { color: #5c6670; font-size: 0.85em; }
th { background: #f6f8fa; }
.table-wrap { overflow-x: auto; }
.notes { color: #8a3b12; }
figure { margin: 0; }
svg { max-width: 100%; height: auto; }
</style>
</head>
<body>
${body}
</body>
</html>
`;
}

export async function writeHtmlReport(report: Report, file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, await renderHtmlReport(report));
}

function tableHtml(table: Table): string {
  const numeric = table.columns.map((_, i) => i > 0 && table.rows.some((row) => row[i]?.refs));
  const head = `<tr>${table.columns.map((c, i) => `<th${numeric[i] ? ' class="num"' : ''}>${escape(c)}</th>`).join('')}</tr>`;
  const cellHtml = (cell: Cell, i: number) => {
    const main = cell.detail ? cell.text.slice(0, cell.text.length - cell.detail.length).trimEnd() : cell.text;
    const detail = cell.detail ? `<br><span class="ci">${escape(cell.detail)}</span>` : '';
    return `<td${numeric[i] ? ' class="num"' : ''}>${escape(main)}${detail}</td>`;
  };
  const rows = table.rows.map((row) => `<tr>${row.map(cellHtml).join('')}</tr>`).join('\n');
  const notes = table.notes.length ? `<ul class="notes">${table.notes.map((n) => `<li>${escape(n)}</li>`).join('')}</ul>` : '';
  return `<section class="table"><h2>${escape(table.title)}</h2><div class="table-wrap"><table>${head}\n${rows}</table></div>${notes}</section>`;
}

function chartHtml(chart: ChartSpec, svg: string): string {
  return `<section class="chart" data-chart="${escape(chart.id)}"><h2>${escape(chart.title)}</h2><figure>${svg}</figure></section>`;
}

function escape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}
