"""One comparative report from the typed results (`eval.results`): results.json, Markdown, HTML, charts.

Rendering only: every number shown is a field of `EvalResults`, which is aggregated from the stored
judgements in `eval.results` and nowhere else.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rolecraft.eval.probing import ProbeResult
from rolecraft.eval.records import TOPICS, Judgement, Transcript
from rolecraft.eval.results import METRIC_TITLES, METRICS, Cell, EvalResults, aggregate
from rolecraft.workspace import atomic_write_text

KIND_TITLES = {"single": "Single-turn interview", "multi": "Multi-turn interview", "wikirole": "WikiRoleEval"}

Table = tuple[str, list[str], list[list[str]]]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def metric_table(results: EvalResults) -> Table | None:
    if not results.metrics:
        return None
    metrics = [m for m in METRICS if any(x.metric == m for x in results.metrics)]
    header = ["agent"] + [f"{METRIC_TITLES[m]} ({'higher' if METRICS[m][1] else 'lower'} is better)" for m in metrics]
    rows = [[agent] + [f"{e.text()} (n={e.n})" if (e := results.metric(agent, m)) else "–" for m in metrics]
            for agent in results.agents if any(x.agent == agent for x in results.metrics)]
    return ("Held-out probes, scored without a judge (mean [95% interval])", header, rows)


def tables(results: EvalResults) -> list[Table]:
    """(title, header, rows) for every table of the report; Markdown, HTML and the CLI render the same rows."""
    out: list[Table] = [t for t in [metric_table(results)] if t]
    for kind in results.kinds():
        dims = results.dimensions(kind)
        scales = {c.dimension: c.scale for c in results.cells if c.kind == kind}
        header = ["agent"] + [f"{d} [{scales[d][0]:g}–{scales[d][1]:g}]" for d in dims]
        rows = [[agent] + [f"{_fmt(c.mean)} (n={c.n})" if (c := results.cell(agent, kind, d)) else "–" for d in dims]
                for agent in results.agents]
        out.append((KIND_TITLES[kind], header, rows))
        topic_rows = []
        for agent in results.agents:
            mine = [c for c in results.topics if c.agent == agent and c.kind == kind]
            for topic in sorted({c.topic_id for c in mine}):
                found = {c.dimension: c for c in mine if c.topic_id == topic}
                label = f"{topic} {TOPICS.get(topic, '')}".strip()
                topic_rows.append([agent, label] + [_fmt(found[d].mean) if d in found else "–" for d in dims])
        if topic_rows:
            out.append((f"{KIND_TITLES[kind]} by topic", ["agent", "topic"] + dims, topic_rows))
    probe_rows = []
    for p in results.probes:
        if p.n:
            hall = next((c.mean for c in p.scores if c.dimension == "hallucination"), None)
            probe_rows.append([p.agent, str(p.n), _fmt(p.pleaded_ignorance), _fmt(p.rejection_accuracy), _fmt(hall)])
    if probe_rows:
        header = ["agent", "probes", "pleaded ignorance [0–1]", "rejection accuracy [0–1]", "hallucination [1–7]"]
        out.append(("Knowledge-boundary probes (scored separately)", header, probe_rows))
    if results.judgements:
        failure_rows = [[f.agent, f.rubric, f"{f.failed} / {f.samples}"] for f in results.parse_failures]
        out.append(("Judge answers that could not be read", ["agent", "rubric", "failed / samples"], failure_rows))
    if results.cost:
        header = ["role", "requests", "new calls", "prompt tokens", "completion tokens"]
        rows = [[role, *(str(v) for v in c.values())] for role, c in results.cost.items()]
        out.append(("Cost of this evaluation round", header, rows))
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc[1:]])


def _title(results: EvalResults) -> str:
    return f"Evaluation of {results.character or 'the agents'}"


PROBES_NOTE = ("Held-out probes ask about the profile's facts in question shapes never trained on, and about "
               "knowledge the character cannot have (some topics never trained on at all). A fact is recalled when "
               "the reply says its key (a name, number or rare word); a boundary question leaks when the reply "
               "explains the topic, and holds when it plainly does not know it and leaks nothing. Intervals are "
               "95 % bootstrap intervals over probes; the verdict's differences are paired on the same probes.")


def _setup(results: EvalResults) -> str:
    if not results.judgements:
        return f"No interview was judged (judge `{results.judge or '?'}`)."
    protocol = "the papers' reference protocol" if results.protocol == "reference" else "rolecraft's protocol"
    return f"judge `{results.judge or '?'}`, {results.samples} sample(s) per judgement, {protocol}"


def headline(results: EvalResults) -> list[str]:
    """The report's first lines: the verdict, and whether the judge could be trusted."""
    lines = [f"**Verdict.** {results.verdict.text()}" if results.verdict else
             "**Verdict.** No trained agent was compared with the prompt-only one on held-out probes."]
    if results.judge_check:
        lines.append(f"**Judge.** {results.judge_check.text()}.")
    return lines


def probe_examples(probe_results: Sequence[ProbeResult], per_agent: int = 6) -> dict[str, list[str]]:
    """A few replies per agent to the held-out probes, with how each was scored."""
    out: dict[str, list[str]] = {}
    for r in probe_results:
        mine = out.setdefault(r.agent, [])
        if len(mine) < per_agent or r.kind == "boundary" and len(mine) < 2 * per_agent:
            mark = ("recalled" if r.recalled else "missed") if r.recalled is not None else \
                ("LEAKED" if r.leaked else "held" if r.held else "no leak, no plain ignorance") if r.leaked is not None \
                else ""
            mine.append(f"**{r.question}** → {_clip(r.reply)} _({mark})_")
    return out


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(results: EvalResults, charts: Sequence[str], probe_results: Sequence[ProbeResult] = ()) -> str:
    parts = [f"# {_title(results)}", "", *headline(results), "", _setup(results), ""]
    parts += [f"![{c}]({c})" for c in charts] + [""]
    for title, header, rows in tables(results):
        parts += [f"## {title}", "", _md_table(header, rows) if rows else "_none_", ""]
        if rows and title.startswith("Held-out probes"):
            parts += [PROBES_NOTE, ""]
            if results.changed:
                shares = ", ".join(f"{a} {v:.2f}" for a, v in results.changed.items())
                parts += [f"Share of probes answered differently from {results.verdict.baseline if results.verdict else 'the baseline'}: {shares}.", ""]
    for agent, lines in probe_examples(probe_results).items():
        parts += [f"## Held-out probe replies: {agent}", ""] + [f"- {line}" for line in lines] + [""]
    for p in results.probes:
        if p.answers:
            parts += [f"## Probe answers: {p.agent}", ""]
            parts += [f"- **{a.question}** → {a.reply} _(pleaded ignorance: {_fmt(a.pleaded_ignorance)})_"
                      for a in p.answers] + [""]
    for agent in (a for a in results.agents if any(w.agent == a for w in results.worst)):
        parts += [f"## Worst answers: {agent}", ""]
        for w in (w for w in results.worst if w.agent == agent):
            parts += [f"- `{w.item}` {w.dimension} = {_fmt(w.score)}: **{w.question}** → {w.reply}",
                      f"  - judge: {w.reasoning}"]
        parts.append("")
    return "\n".join(parts)


def html_page(results: EvalResults, charts: Sequence[str], probe_results: Sequence[ProbeResult] = ()) -> str:
    e = html.escape
    body = [f"<h1>{e(_title(results))}</h1>"] + [f"<p>{e(line.replace('**', ''))}</p>" for line in headline(results)]
    body.append(f"<p>{e(_setup(results))}</p>")
    body += [f'<img src="{e(c)}" alt="{e(c)}">' for c in charts]
    for title, header, rows in tables(results):
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        cells = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        body.append(f"<h2>{e(title)}</h2><table><tr>{head}</tr>{cells}</table>")
    for agent, lines in probe_examples(probe_results).items():
        items = "".join(f"<li>{e(line.replace('**', ''))}</li>" for line in lines)
        body.append(f"<h2>Held-out probe replies: {e(agent)}</h2><ul>{items}</ul>")
    for p in results.probes:
        items = "".join(f"<li><b>{e(a.question)}</b> → {e(a.reply)} <i>(pleaded ignorance: "
                        f"{_fmt(a.pleaded_ignorance)})</i></li>" for a in p.answers)
        if items:
            body.append(f"<h2>Probe answers: {e(p.agent)}</h2><ul>{items}</ul>")
    for agent in (a for a in results.agents if any(w.agent == a for w in results.worst)):
        items = "".join(
            f"<li><code>{e(w.item)}</code> {e(w.dimension)} = {_fmt(w.score)}: <b>{e(w.question)}</b>"
            f" → {e(w.reply)}<br><i>judge: {e(w.reasoning)}</i></li>" for w in results.worst if w.agent == agent)
        body.append(f"<h2>Worst answers: {e(agent)}</h2><ul>{items}</ul>")
    style = ("body{font-family:sans-serif;max-width:72em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .6em}img{max-width:100%}")
    return f"<!doctype html><meta charset=utf-8><title>{e(_title(results))}</title><style>{style}</style>" + "".join(body)


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "agent"


def _share(cell: Cell | None) -> float:
    """A cell's mean as a share of its scale (0 when there is no mean)."""
    if cell is None or cell.mean is None:
        return 0.0
    low, high = cell.scale
    return (cell.mean - low) / (high - low) if high > low else cell.mean


def charts(results: EvalResults, folder: Path) -> list[str]:
    """`chart.png` (bars per dimension, one panel per kind, plus probes) and `radar-<agent>.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [probe_chart(results, folder, plt)] if results.metrics else []
    agents, kinds = results.agents, results.kinds()
    probes = [p for p in results.probes if p.pleaded_ignorance is not None]
    panels = len(kinds) + bool(probes)
    if not panels:
        return names
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        dims = results.dimensions(kind)
        scales = {c.scale for c in results.cells if c.kind == kind}
        # One shared scale is drawn as is; mixed scales (WikiRoleEval) as the share of each scale.
        mixed = len(scales) > 1
        low, high = (0.0, 1.0) if mixed else next(iter(scales))
        width = 0.8 / len(agents)
        for i, agent in enumerate(agents):
            found = [results.cell(agent, kind, d) for d in dims]
            values = [_share(c) if mixed else (c.mean or 0.0) if c else 0.0 for c in found]
            ax.bar(np.arange(len(dims)) + i * width, values, width, label=agent)
        ax.set_xticks(np.arange(len(dims)) + width * (len(agents) - 1) / 2, dims, rotation=30, ha="right")
        ax.set_ylim(0, high)
        ax.set_title(KIND_TITLES[kind] + (" (share of each scale)" if mixed else f" ({low:g}–{high:g})"))
        ax.legend(fontsize="small")
    if probes:
        ax = axes[0][-1]
        ax.bar([p.agent for p in probes], [p.pleaded_ignorance for p in probes], color="tab:gray")
        ax.set_ylim(0, 1)
        ax.set_title("Probes: share pleading ignorance")
    fig.tight_layout()
    fig.savefig(folder / "chart.png", dpi=100)
    plt.close(fig)
    names.append("chart.png")
    for agent in agents:
        mine = [c for c in results.cells if c.agent == agent and c.mean is not None and c.scale[1] > c.scale[0]]
        if len(mine) < 3:
            continue
        labels = [f"{c.kind}:{c.dimension}" for c in mine]
        values = [_share(c) for c in mine]
        angles = np.linspace(0, 2 * np.pi, len(labels), endpoint=False).tolist()
        fig, ax = plt.subplots(figsize=(5, 5), subplot_kw={"polar": True})
        ax.plot(angles + angles[:1], values + values[:1], marker="o")
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.25)
        ax.set_xticks(angles, labels, fontsize="small")
        ax.set_ylim(0, 1)
        ax.set_title(f"{agent} (each dimension scaled to 0–1)")
        fig.tight_layout()
        name = f"radar-{_slug(agent)}.png"
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names


def probe_chart(results: EvalResults, folder: Path, plt) -> str:
    """`probes.png`: each agent's share of held-out probes recalled / held / leaked, with 95 % intervals."""
    import numpy as np

    shares = [m for m in METRICS if m != "apc" and any(x.metric == m for x in results.metrics)]
    agents = [a for a in results.agents if any(x.agent == a for x in results.metrics)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(agents) * len(shares) / 2, 4))
    width = 0.8 / len(shares)
    for i, metric in enumerate(shares):
        found = [results.metric(a, metric) for a in agents]
        means = [e.mean if e else 0.0 for e in found]
        errors = [[e.mean - e.low if e else 0 for e in found], [e.high - e.mean if e else 0 for e in found]]
        better = "higher" if METRICS[metric][1] else "lower"
        ax.bar(np.arange(len(agents)) + i * width, means, width, yerr=errors, capsize=3,
               label=f"{METRIC_TITLES[metric]} ({better} is better)")
    ax.set_xticks(np.arange(len(agents)) + width * (len(shares) - 1) / 2, agents, rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out probes (share of probes, 95 % interval)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / "probes.png", dpi=100)
    plt.close(fig)
    return "probes.png"


def write_report(folder: Path, transcripts: Sequence[Transcript], judgements: Sequence[Judgement],
                 probe_results: Sequence[ProbeResult] = (), **meta: Any) -> EvalResults:
    """results.json, report.md, report.html and the charts, from the stored records and run metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    results = aggregate(transcripts, judgements, probe_results, **meta)
    images = charts(results, folder)
    atomic_write_text(folder / "results.json", results.model_dump_json(indent=2))
    atomic_write_text(folder / "report.md", markdown(results, images, probe_results))
    atomic_write_text(folder / "report.html", html_page(results, images, probe_results))
    return results
