"""The conversation evaluation as one self-contained HTML page a support team reads.

Inline CSS, charts as inline SVG, no script and no external URL: the file opens from a mail
attachment or a shared drive as it is. Sections (their element ids): ``summary``, ``models``
(which model stack and bundle played which conversations), ``input`` (lines not read, with
their line numbers), ``languages`` (recall by the expected turn, false handoffs and team
accuracy per language, beside keyword rules), ``confusion`` (intents against labels, and the
escalation decision against labels), ``reliability`` (P(escalate) against labels),
``reasons-over-time`` (why conversations went to a human, by day), ``handoffs``,
``disagreements`` (the conversations where model and labels disagree most, each linked to its
``transcripts`` entry), ``conversations`` (every conversation's language, stack and models) and
``kpis`` (the service's own, given its database).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04",
           "#db2777", "#4b5563")
ENGINE, KEYWORDS = "#2563eb", "#9ca3af"

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f9fafb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); margin: 0; background: #fff; }
header { background: #111827; color: #f9fafb; padding: 18px 32px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; }
header p { margin: 0; color: #d1d5db; font-size: 13px; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { padding: 8px 32px 48px; max-width: 1280px; }
section { margin-top: 28px; }
h2 { font-size: 18px; margin: 0 0 6px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.note, .note { color: var(--muted); font-size: 12.5px; margin: 4px 0 10px; max-width: 980px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 10px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px;
        background: var(--bg); }
.card b { display: block; font-size: 22px; font-weight: 650; }
.card span { color: var(--muted); font-size: 12px; }
.card.warn { border-color: #f59e0b; background: #fffbeb; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; text-align: left;
         vertical-align: top; }
th { font-weight: 600; color: #374151; background: #fff; }
td.num, th.num { text-align: right; padding-left: 10px; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 650; border-top: 2px solid #d1d5db; }
.pair { white-space: nowrap; }
.pair .kw { color: var(--muted); }
.good { color: #15803d; } .bad { color: #b91c1c; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.side { flex: 1; min-width: 280px; max-width: 520px; }
.side .legend { flex-direction: column; }
figure { margin: 0; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 2px; max-width: 520px; }
svg text { font-family: inherit; }
.matrix td { text-align: center; min-width: 30px; padding: 3px 4px; border: 1px solid #fff; }
.matrix th.col { writing-mode: vertical-rl; transform: rotate(180deg); font-weight: 500;
                 font-size: 12px; padding: 4px 2px; text-align: left; }
.matrix th.row { font-weight: 500; font-size: 12px; padding-right: 8px; white-space: nowrap; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; margin: 4px 0; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
            margin-right: 5px; vertical-align: -1px; }
.chip { display: inline-block; font-size: 11.5px; border-radius: 10px; padding: 0 7px;
        background: #eef2ff; color: #3730a3; margin: 1px 3px 1px 0; white-space: nowrap; }
.chip.handoff { background: #fee2e2; color: #991b1b; }
.chip.label { background: #ecfdf5; color: #065f46; }
.conv { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 14px 0;
        scroll-margin-top: 48px; }
.conv:target { border-color: var(--accent); box-shadow: 0 0 0 3px #bfdbfe; }
.conv h3 { margin: 0 0 4px; }
.meta { color: var(--muted); font-size: 12.5px; margin-bottom: 6px; }
.line { display: flex; gap: 10px; margin: 5px 0; align-items: flex-start; }
.line .who { width: 84px; flex: none; font-size: 11px; line-height: 1.3; color: var(--muted);
             padding-top: 4px; }
.bubble { border-radius: 10px; padding: 5px 10px; max-width: 680px; white-space: pre-wrap;
          overflow-wrap: anywhere; }
.customer .bubble { background: #f3f4f6; }
.bot .bubble, .agent .bubble { background: #e0f2fe; }
.agent .bubble { background: #fef3c7; }
.engine { font-size: 12px; color: #374151; margin: 2px 0 0 94px; }
.pbar { display: inline-block; width: 60px; height: 8px; background: #e5e7eb; border-radius: 4px;
        vertical-align: 0; margin: 0 4px; overflow: hidden; }
.pbar i { display: block; height: 8px; background: #2563eb; }
.why { margin: 0; padding-left: 18px; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
.warnbox { border-left: 4px solid #f59e0b; background: #fffbeb; padding: 6px 12px; margin: 8px 0; }
a { color: var(--accent); }
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}%}"


def legend(items: Sequence[tuple[str, str]]) -> str:
    return ('<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{esc(n)}</span>'
                                             for n, c in items) + "</div>")


# --- inline SVG charts ---------------------------------------------------------------------------

def _svg(width: float, height: float, parts: Sequence[str]) -> str:
    return (f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            + "".join(parts) + "</svg>")


def svg_hbars(items: Sequence[tuple[str, float]], *, width: int = 520, colour: str = ENGINE,
              label_width: int = 230) -> str:
    """Horizontal bars with their values, the longest first as given."""
    items = list(items)[:15]
    if not items:
        return '<p class="note">None in this run.</p>'
    top = max(v for _, v in items) or 1
    row, height = 20, 20 * len(items) + 6
    bars = []
    for i, (name, value) in enumerate(items):
        y = i * row + 3
        w = (width - label_width - 50) * value / top
        label = str(name) if len(str(name)) <= 34 else str(name)[:33] + "…"
        bars.append(f'<text x="{label_width - 6}" y="{y + 12}" text-anchor="end" font-size="12">'
                    f'<title>{esc(name)}</title>{esc(label)}</text>'
                    f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="14" rx="2" '
                    f'fill="{colour}"/><text x="{label_width + w + 4:.1f}" y="{y + 12}" '
                    f'font-size="12" fill="#374151">{value:g}</text>')
    return _svg(width, height, bars)


def svg_grouped_percent(groups: Sequence[str], series: Sequence[tuple[str, str, list]], *,
                        title: str, target: float | None = None, width: int = 380) -> str:
    """Vertical bars, one group per language and one bar per series, on a 0-100 % axis, each
    with its value; the target as a dashed line."""
    height, left, bottom, top = 230, 40, 28, 34
    plot_w, plot_h = width - left - 10, height - bottom - top
    group_w = plot_w / max(1, len(groups))
    bar_w = min(26, (group_w - 12) / max(1, len(series)))
    heading = title + (f" (target {target:.0%})" if target is not None else "")
    parts = [f'<text x="{left}" y="14" font-size="13" font-weight="600">{esc(heading)}</text>']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e5e7eb"/><text x="{left - 4}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end" fill="#6b7280">{tick:.0%}</text>')
    for g, group in enumerate(groups):
        x0 = left + g * group_w + (group_w - bar_w * len(series)) / 2
        for s, (name, colour, values) in enumerate(series):
            value = values[g]
            x = x0 + s * bar_w
            if value is None:
                parts.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{top + plot_h - 3:.1f}" '
                             f'font-size="10" text-anchor="middle" fill="#9ca3af">–</text>')
                continue
            h = plot_h * value
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{esc(group)} {esc(name)}: '
                         f'{value:.1%}</title></rect><text x="{x + bar_w / 2 - 1:.1f}" '
                         f'y="{top + plot_h - h - 3:.1f}" font-size="9.5" text-anchor="middle" '
                         f'fill="#374151">{100 * value:.0f}</text>')
        parts.append(f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{height - 10}" '
                     f'font-size="12" text-anchor="middle">{esc(group)}</text>')
    if target is not None:
        y = top + plot_h * (1 - target)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#16a34a" stroke-width="1.5" stroke-dasharray="5 3"/>')
    return _svg(width, height, parts)


def svg_reliability(curves: Sequence[tuple[str, str, dict]], *, size: int = 340) -> str:
    """P(escalate) against the share of turns labelled escalate, per curve; dots sized by turns."""
    left, bottom, pad = 44, 40, 12
    plot = size - left - pad
    height = plot + bottom + pad

    def xy(p: float, o: float) -> tuple[float, float]:
        return left + plot * p, pad + plot * (1 - o)

    parts = []
    for tick in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        x, y = xy(tick, tick)
        parts.append(f'<line x1="{left}" x2="{left + plot}" y1="{y:.1f}" y2="{y:.1f}" stroke="#f3f4f6"/>'
                     f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{pad}" y2="{pad + plot}" stroke="#f3f4f6"/>'
                     f'<text x="{left - 5}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#6b7280">{tick:.1f}</text><text x="{x:.1f}" y="{pad + plot + 15}" '
                     f'font-size="11" text-anchor="middle" fill="#6b7280">{tick:.1f}</text>')
    parts.append(f'<rect x="{left}" y="{pad}" width="{plot}" height="{plot}" fill="none" stroke="#d1d5db"/>'
                 f'<line x1="{left}" y1="{pad + plot}" x2="{left + plot}" y2="{pad}" stroke="#9ca3af" '
                 f'stroke-dasharray="5 4"/>'
                 f'<text x="{left + plot / 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
                 f'P(escalate), binned</text>'
                 f'<text x="12" y="{pad + plot / 2}" font-size="12" text-anchor="middle" '
                 f'transform="rotate(-90 12 {pad + plot / 2})">share labelled escalate</text>')
    for name, colour, curve in curves:
        rel = curve["reliability"]
        points = [(p, o, c) for p, o, c in zip(rel["predicted"], rel["observed"], rel["count"]) if c]
        if not points:
            continue
        total = sum(c for _, _, c in points)
        path = " ".join(f"{'M' if i == 0 else 'L'}{xy(p, o)[0]:.1f},{xy(p, o)[1]:.1f}"
                        for i, (p, o, _) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        for p, o, c in points:
            x, y = xy(p, o)
            r = 2.5 + 5 * (c / total) ** 0.5
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}" '
                         f'fill-opacity="0.75"><title>{esc(name)}: P {p:.2f}, observed {o:.2f}, '
                         f'{c} turns</title></circle>')
    return _svg(size, height, parts)


def svg_stacked_days(days: dict[str, dict[str, int]], reasons: list[str], colours: dict[str, str],
                     *, width: int = 760) -> str:
    """One stacked bar per day: handoffs by their first reason."""
    names = list(days)
    height, left, bottom, top = 240, 36, 52, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max(sum(d.values()) for d in days.values()) or 1
    step = plot_w / max(1, len(names))
    bar_w = max(3.0, min(38.0, step - 4))
    parts = []
    for tick in sorted({0, peak // 2, peak}):
        y = top + plot_h * (1 - tick / peak)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#6b7280">{tick}</text>')
    every = max(1, len(names) // 14)
    for i, day in enumerate(names):
        x = left + i * step + (step - bar_w) / 2
        y = top + plot_h
        for reason in reasons:
            n = days[day].get(reason, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{colours[reason]}"><title>{esc(day)}: {esc(reason)} ({n})</title></rect>')
        if i % every == 0:
            cx = x + bar_w / 2
            parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 12}" font-size="10.5" '
                         f'text-anchor="end" transform="rotate(-35 {cx:.1f} {top + plot_h + 12})">'
                         f'{esc(day)}</text>')
    return _svg(width, height, parts)


# --- sections -----------------------------------------------------------------------------------

def section(ident: str, title: str, body: str, note: str = "") -> str:
    return (f'<section id="{ident}"><h2>{esc(title)}</h2>'
            + (f'<p class="note">{note}</p>' if note else "") + body + "</section>")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
          total_last: bool = False) -> str:
    """A table of already-escaped cells; ``numeric`` columns align right."""
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{h}</th>' for i, h in enumerate(header))
    body = []
    for n, row in enumerate(rows):
        cls = ' class="total"' if total_last and n == len(rows) - 1 else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="{"num" if i in numeric else ""}">{c}</td>'
                                           for i, c in enumerate(row)) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary(report: dict) -> str:
    agreement = report.get("agreement_with_labels") or {}
    unread = len(report.get("unreadable", []))
    cards = [(f"{report['conversations']:,}", "conversations"),
             (f"{report['turns']:,}", "customer turns played"),
             (pct(report["escalation_rate_conversations"]), "handed to a human"),
             (pct(report["containment_rate"]), "kept by the bot")]
    if agreement:
        cards.append((f"{agreement['labelled_turns']:,}", "turns with an agent's label"))
    if report.get("expected_handoffs"):
        every = report["expected_handoffs"]["all"]
        cards.append((pct(every["engine"]["recall_by_expected_turn"]),
                      "recall by the expected turn"))
        cards.append((pct(every["engine"]["false_handoffs"]), "false handoffs"))
    html_cards = "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
                         for v, k in cards)
    html_cards += (f'<div class="card{" warn" if unread else ""}"><b>{unread}</b>'
                   f'<span><a href="#input">lines not read</a></span></div>')
    warned = report.get("language_warnings", {}).get("conversations", 0)
    if warned:
        html_cards += (f'<div class="card warn"><b>{warned}</b><span><a href="#models">'
                       f'conversations on a model not trained for their language</a></span></div>')
    return section("summary", "Summary", f'<div class="cards">{html_cards}</div>')


def _models(report: dict) -> str:
    rows = []
    for name, s in report.get("models", {}).items():
        ran = s.get("models_that_ran") or {}
        nlu = "<br>".join(f"{esc(m)} <span class='note'>({n} turns)</span>" for m, n in ran.items()) \
            or esc(s.get("nlu", "not loaded: no conversation in its languages"))
        source = s.get("source") or {}
        rows.append([f"<b>{esc(name)}</b>", esc(", ".join(s.get("serves", [])) or "–"), nlu,
                     esc(", ".join(s.get("nlu_languages", [])) or "–"),
                     esc(s.get("policy", "–")),
                     esc(source.get("nlu", "–")) + "<br>" + esc(source.get("policy", "")),
                     str(s.get("conversations", 0)), str(s.get("turns", 0)),
                     esc(", ".join(f"{k} {v}" for k, v in (s.get("languages_played") or {}).items())
                         or "–")])
    body = table(["stack", "serves (flow languages)", "NLU bundle that ran", "trained for",
                  "policy (content version)", "from (NLU / policy)", "conversations", "turns",
                  "languages played"], rows, numeric=(6, 7))
    flow = report.get("flow")
    if flow:
        body += (f'<p class="note">Flow <b>{esc(flow["brand"])}</b>: {esc(flow["path"])} '
                 f'({esc(flow["digest"])}); languages {esc(", ".join(flow["languages"]))}; teams '
                 f'{esc(", ".join(flow["teams"]))} (default {esc(flow["default_team"])}).</p>')
    warnings = report.get("language_warnings") or {}
    if warnings.get("conversations"):
        items = "".join(f"<li>{esc(w['conversation_id'])}: {esc('; '.join(w['warnings']))}</li>"
                        for w in warnings["examples"])
        body += (f'<div class="warnbox"><b>{warnings["conversations"]} conversations ran on a '
                 f'model not trained for their labelled language.</b><ul>{items}</ul></div>')
    return section("models", "Which models ran", body,
                   "Each conversation runs on the model stack of its language, as in the service: "
                   "the language is detected from the customer's messages within the flow's "
                   "languages. Every turn records the stack and the NLU bundle (name@version) that "
                   "read it; each conversation's are in the table at the end and in "
                   "conversations.jsonl.")


def _input(report: dict) -> str:
    problems = report.get("unreadable", [])
    body = f"<p>Read from <b>{esc(report['input'])}</b> ({esc(report.get('input_format', ''))}).</p>"
    if problems:
        shown = problems[:500]
        body += table(["source", "line / row", "why it was not read"],
                      [[esc(p["source"]), esc("–" if p["line"] is None else p["line"]),
                        esc(p["reason"])] for p in shown], numeric=(1,))
        if len(problems) > len(shown):
            body += f'<p class="note">…and {len(problems) - len(shown)} more in report.json.</p>'
    else:
        body += "<p>Every line was read.</p>"
    skipped = report.get("export_lines_not_played")
    if skipped:
        body += (f'<p class="note">Not turns: {skipped["system_lines"]} system lines, '
                 f'{skipped["media_without_caption"]} attachments without a caption, '
                 f'{skipped["deleted_messages"]} deleted messages, '
                 f'{skipped["business_only_stretches"]} stretches with only the business '
                 f'writing.</p>')
        body += "".join(f'<p class="note">{esc(n)}</p>' for n in skipped["notes"])
    return section("input", "Input", body)


def _pair(engine: float | None, keywords: float | None, higher_is_better: bool) -> str:
    cls = ""
    if engine is not None and keywords is not None and engine != keywords:
        cls = "good" if (engine > keywords) == higher_is_better else "bad"
    return (f'<span class="pair"><span class="{cls}">{pct(engine)}</span> '
            f'<span class="kw">/ {pct(keywords)}</span></span>')


def _languages(report: dict) -> str:
    expected = report.get("expected_handoffs") or {}
    langs = report.get("languages", {})
    rows = []
    for lang in list(langs) + (["all"] if expected else []):
        base = langs.get(lang) or {"conversations": report["conversations"],
                                   "escalation_rate": report["escalation_rate_conversations"],
                                   "stacks": {}}
        e = expected.get(lang)
        stacks = ", ".join(base.get("stacks", {})) or ("all" if lang == "all" else "–")
        row = [f"<b>{esc(lang)}</b>", str(base["conversations"]), esc(stacks),
               pct(base["escalation_rate"])]
        if e:
            row += [f"{e['conversations']} ({e['need_a_human']})",
                    _pair(e["engine"]["recall_by_expected_turn"],
                          e["keyword_rules"]["recall_by_expected_turn"], True),
                    _pair(e["engine"]["false_handoffs"], e["keyword_rules"]["false_handoffs"], False),
                    _pair(e["engine"]["team_accuracy"], e["keyword_rules"]["team_accuracy"], True),
                    esc(e["calibration"].get("ece", "–"))]
        elif expected:
            row += ["–"] * 5
        rows.append(row)
    header = ["language", "conversations", "stack", "handed off"]
    if expected:
        header += ["labelled (need a human)", "recall by the expected turn<br>engine / keywords",
                   "false handoffs<br>engine / keywords", "right team<br>engine / keywords",
                   "ECE of P(escalate)"]
    body = table(header, rows, numeric=(1, 3, 8), total_last=bool(expected))
    if not expected:
        body += ('<p class="note">No conversation carries <code>expected</code> labels: recall, '
                 "false handoffs and team accuracy need them.</p>")
    if expected:
        groups = list(expected)
        charts = []
        for key, title, target in (("recall_by_expected_turn", "Recall by the expected turn", 0.97),
                                   ("false_handoffs", "False handoffs (lower is better)", 0.05),
                                   ("team_accuracy", "Right team", 0.90)):
            charts.append(svg_grouped_percent(groups, [
                ("engine", ENGINE, [expected[g]["engine"][key] for g in groups]),
                ("keyword rules", KEYWORDS, [expected[g]["keyword_rules"][key] for g in groups])],
                title=title, target=target))
        body += legend([("engine (models + policy + flow rules)", ENGINE),
                        ("keyword rules (no-code bot builders' rules, same run)", KEYWORDS)])
        body += f'<div class="charts">{"".join(charts)}</div>'
    return section(
        "languages", "Per language", body,
        "Grouped by the conversation's labelled language (detected when unlabelled). Where "
        "conversations carry <code>expected</code>: <b>recall</b> is the share of those that "
        "need a human handed off at or before the expected turn; <b>false handoffs</b> the "
        "share of those that do not, handed off anyway; <b>right team</b> the share of handed-off "
        "conversations that need a human sent to the expected team. Green: the engine beats the "
        "keyword rules; red: it does worse. Dashed lines: the project's targets.")


def _heat(value: int, peak: int, diagonal: bool) -> str:
    if not value:
        return "#fff"
    alpha = 0.15 + 0.85 * value / peak
    return f"rgba(37,99,235,{alpha:.2f})" if diagonal else f"rgba(220,38,38,{alpha:.2f})"


def _confusion(report: dict) -> str:
    body = ""
    intents = report.get("intent_confusion")
    if intents:
        labelled = list(intents["matrix"])
        columns = intents["labels"]
        peak = max(n for row in intents["matrix"].values() for n in row.values())
        head = "<tr><th></th>" + "".join(f'<th class="col">{esc(c)}</th>' for c in columns) + "</tr>"
        rows = []
        for label in labelled:
            cells = []
            for c in columns:
                n = intents["matrix"][label].get(c, 0)
                colour = "#fff" if not n else _heat(n, peak, label == c)
                ink = "#fff" if n and n / peak > 0.55 else "#111827"
                cells.append(f'<td style="background:{colour};color:{ink}" title="labelled '
                             f'{esc(label)}, read as {esc(c)}: {n}">{n or ""}</td>')
            rows.append(f'<tr><th class="row">{esc(label)}</th>{"".join(cells)}</tr>')
        body += (f"<h3>Intents: {intents['labelled_turns']} customer lines with an intent label, "
                 f"{pct(intents['accuracy'])} read as labelled</h3>"
                 f'<table class="matrix"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
                 '<p class="note">Rows: the intent a person labelled on the line (<code>intent</code>);'
                 " columns: the intent the model read. Blue: agreement; red: confusion.</p>")
    else:
        body += ('<p>No customer line carries an intent label (<code>"intent"</code> on a '
                 "message), so there is no intent confusion matrix; below, the escalation decision "
                 "against the labels that exist.</p>")
    escalation = report.get("escalation_confusion")
    if escalation:
        m = escalation["matrix"]
        rows = [[f"<b>labelled {label}</b>", str(m[label]["yes"]), str(m[label]["no"])]
                for label in ("yes", "no")]
        body += (f"<h3>Escalation at {escalation['labelled_turns']} labelled turns</h3>"
                 + table(["", "engine: escalate", "engine: keep"], rows, numeric=(1, 2))
                 + '<p class="note">A turn counts when a person labelled it: the line\'s own '
                 "<code>escalate</code> label (an agent's), else, in conversations with "
                 "<code>expected</code>, the turns before the expected handoff turn are labelled "
                 "no and the turns from it on yes, counted up to the engine's own handoff. "
                 "The engine's decision is the policy's at that turn.</p>")
    elif not intents:
        body += "<p>No labelled turns in this log.</p>"
    return section("confusion", "Confusion: model against labels", body)


def _reliability(report: dict) -> str:
    curves = []
    expected = report.get("expected_handoffs") or {}
    colour = iter(PALETTE)
    for lang, s in expected.items():
        if s.get("calibration", {}).get("reliability"):
            curves.append((f"{lang}: expected turn labels (ECE {s['calibration']['ece']})",
                           "#111827" if lang == "all" else next(colour), s["calibration"]))
    agent = report.get("reliability_agent_labels")
    if agent:
        curves.append((f"agent labels (ECE {agent['ece']})", "#dc2626", agent))
    if not curves:
        return section("reliability", "Reliability of P(escalate)",
                       "<p>No labelled turns in this log: nothing to calibrate against.</p>")
    body = (f'<div class="charts"><figure>{svg_reliability(curves)}</figure>'
            f'<div class="side">{legend([(n, c) for n, c, _ in curves])}<p class="note">Dots: '
            "bins of P(escalate), sized by their turns. On the dashed diagonal, P(escalate) is "
            "the share of turns a person labelled escalate; above it the model says too little "
            "(it under-escalates), below it too much. ECE: the turns' average distance from "
            "the diagonal.</p></div></div>")
    return section("reliability", "Reliability of P(escalate)", body,
                   "P(escalate) at each labelled turn against its label: expected-turn labels up "
                   "to the engine's handoff (per language), and agents' per-line labels.")


def _reasons_over_time(report: dict) -> str:
    days = report.get("reasons_by_day") or {}
    if not days:
        return section("reasons-over-time", "Why conversations went to a human, by day",
                       "<p>No handoffs in this run.</p>")
    totals: dict[str, int] = {}
    for reasons in days.values():
        for reason, n in reasons.items():
            totals[reason] = totals.get(reason, 0) + n
    top = sorted(totals, key=totals.get, reverse=True)
    keep = top[:len(PALETTE) - 1] if len(top) > len(PALETTE) else top
    grouped: dict[str, dict[str, int]] = {}
    for day, reasons in days.items():
        row = grouped.setdefault(day, {})
        for reason, n in reasons.items():
            key = reason if reason in keep else "other reasons"
            row[key] = row.get(key, 0) + n
    names = keep + (["other reasons"] if len(keep) < len(top) else [])
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    body = legend([(f"{n} ({sum(d.get(n, 0) for d in grouped.values())})", colours[n])
                   for n in names])
    body += svg_stacked_days(grouped, names, colours)
    undated = "undated" in days
    return section("reasons-over-time", "Why conversations went to a human, by day", body,
                   "Each handoff by the day the customer wrote the message that triggered it (in "
                   "the flow's timezone) and its first reason."
                   + (" Messages without a timestamp are under “undated”." if undated else ""))


def _handoffs(report: dict) -> str:
    charts = []
    for key, title in (("handoff_reasons", "Why the policy hands off (all reasons)"),
                       ("handoff_at_turn", "Turn of the handoff"),
                       ("handoff_teams", "Teams the handoffs went to"),
                       ("intent_distribution", "Intents read, all turns")):
        items = [(f"turn {k}" if key == "handoff_at_turn" else k, v)
                 for k, v in (report.get(key) or {}).items()]
        charts.append(f"<figure><h3>{esc(title)}</h3>{svg_hbars(items)}</figure>")
    body = f'<div class="charts">{"".join(charts)}</div>'
    agreement = report.get("agreement_with_labels")
    if agreement:
        body += ("<h3>Agreement with agents' per-line labels</h3>" + table(
            ["labelled turns", "labelled escalate", "precision", "recall", "ROC-AUC", "ECE"],
            [[str(agreement["labelled_turns"]), pct(agreement["positive_rate"]),
              pct(agreement["precision"]), pct(agreement["recall"]),
              "–" if agreement["roc_auc"] is None else f"{agreement['roc_auc']:.3f}",
              f"{agreement['ece']:.3f}"]], numeric=(0, 1, 2, 3, 4, 5)))
    t = report["throughput"]
    body += (f'<p class="note">{report["turns"]:,} turns in {t["seconds"]:.1f} s '
             f'({t["messages_per_s"]:.0f} turns/s, {esc(report["engine"])} engine; the models '
             f'read {t["unique_texts_scored"]:,} distinct texts in {t["model_seconds"]:.1f} s).</p>')
    return section("handoffs", "Handoffs", body)


def _disagreements(report: dict) -> str:
    worst = report.get("disagreements") or []
    if not worst:
        return section("disagreements", "Where model and labels disagree most",
                       "<p>No conversation in this log disagrees with a label (or none is "
                       "labelled).</p>")
    rows = [[str(n), f'<a href="#{esc(w["anchor"])}">{esc(w["conversation_id"])}</a>',
             esc(w["language"]), esc(", ".join(w["stacks"])), f"{w['disagreement']:.2f}",
             "<ul class='why'>" + "".join(f"<li>{esc(x)}</li>" for x in w["why"]) + "</ul>"]
            for n, w in enumerate(worst, start=1)]
    return section(
        "disagreements", "Where model and labels disagree most",
        table(["#", "conversation", "language", "stack", "score", "where"], rows, numeric=(0, 4)),
        "Score: 1 for a wrong outcome against <code>expected</code> (missed, late or false "
        "handoff; 0.5 for the wrong team), plus the largest gap between P(escalate) and a turn's "
        "label, plus 0.25 per line whose intent differs from its label (at most 1). Each links to "
        "its transcript below.")


def _transcript(w: dict) -> str:
    records = {r["turn"] + 1: r for r in w["turn_records"]}
    lines = []
    for line in w["transcript"]:
        role = line["role"]
        when = (line["at"] or "")[5:16].replace("T", " ")  # MM-DD HH:MM
        text = line["text"] or (f"[button {line.get('button_id')}]" if line.get("button_id") else "")
        lines.append(f'<div class="line {role}"><div class="who">{esc(role)}'
                     f'{"<br>" + esc(when) if when else ""}</div>'
                     f'<div class="bubble">{esc(text)}</div></div>')
        r = records.get(line.get("turn"))
        if r is None:
            continue
        chips = [f'<span class="chip">turn {line["turn"]}</span>',
                 f'<span class="chip">{esc(r["intent"])}</span>']
        if r["expected_intent"] and r["expected_intent"] != r["intent"]:
            chips.append(f'<span class="chip label">labelled {esc(r["expected_intent"])}</span>')
        label = r["label"] if r["label"] is not None else r["expected_label"]
        if label is not None:
            chips.append(f'<span class="chip label">label: {"escalate" if label else "keep"}</span>')
        if r["handoff_team"]:
            chips.append(f'<span class="chip handoff">handed off to {esc(r["handoff_team"])}: '
                         f'{esc("; ".join(r["handoff_reasons"]))}</span>')
        lines.append(f'<div class="engine">P(escalate) <span class="pbar"><i style="width:'
                     f'{100 * r["p_escalate"]:.0f}%"></i></span>{r["p_escalate"]:.2f} · '
                     f'{esc(r["model_stack"])} ({esc(r["model"])}) {"".join(chips)}</div>')
    expected = w.get("expected") or {}
    meta = (f"language {esc(w['language'])}"
            + (f" (detected {esc(w['detected_language'])})"
               if w["detected_language"] != w["language"] else "")
            + f" · tier {esc(w['tier'])} · stacks {esc(', '.join(f'{k} ({v} turns)' for k, v in w['stacks'].items()))}"
            + f" · engine: {'handoff at turn ' + str(w['handoff_turn']) + ' to ' + esc(w['handoff_team']) if w['handoff_turn'] else 'no handoff'}"
            + (f" · expected: {'a human by turn ' + str(expected['handoff_by_turn']) if expected.get('handoff_by_turn') else 'bot keeps it'}"
               + (f" ({esc(expected['team'])})" if expected.get("team") else "") if w.get("expected") else ""))
    why = "".join(f"<li>{esc(x)}</li>" for x in w["why"])
    return (f'<article class="conv" id="{esc(w["anchor"])}"><h3>{esc(w["conversation_id"])}</h3>'
            f'<div class="meta">{meta}</div><ul class="why">{why}</ul>{"".join(lines)}'
            f'<p class="note"><a href="#{"disagreements" if w["why"] else "conversations"}">'
            'back to the list</a></p></article>')


def _transcripts(report: dict) -> str:
    shown = report.get("disagreements") or []
    note = ("Customer lines are the turns the engine played; bot and agent lines are the log's "
            "own, shown for context. Under each turn: the engine's P(escalate), the stack and NLU "
            "bundle that read it, the intent read and the labels.")
    if not shown and report.get("handoffs_without_labels"):
        shown = report["handoffs_without_labels"]
        note += (f" Nothing in this log disagrees with a label, so these are the first "
                 f"{len(shown)} conversations the engine handed to a human.")
    body = "".join(_transcript(w) for w in shown) or "<p>None to show.</p>"
    return section("transcripts", "Transcripts", body, note)


def _conversations(report: dict) -> str:
    rows_data = report.get("conversation_rows") or []
    linked = {w["anchor"] for key in ("disagreements", "handoffs_without_labels")
              for w in report.get(key) or []}
    rows = []
    for r in rows_data:
        name = (f'<a href="#{esc(r["anchor"])}">{esc(r["conversation_id"])}</a>'
                if r["anchor"] in linked else esc(r["conversation_id"]))
        expected = r.get("expected")
        rows.append([name, esc(r["language"]), esc(", ".join(r["stacks"])),
                     esc(", ".join(r["models"])), str(r["turns"]),
                     esc(f"turn {r['handoff_turn']} → {r['handoff_team']}" if r["handoff_turn"] else "–"),
                     esc("–" if not expected else
                         (f"by turn {expected.get('handoff_by_turn')}" if expected.get("handoff_by_turn")
                          else "bot keeps it") + (f" → {expected['team']}" if expected.get("team") else "")),
                     f"{r['disagreement']:.2f}"])
    shown = len(rows_data)
    body = (f"<details{' open' if shown <= 100 else ''}><summary>Every conversation ({shown:,}"
            + (f" of {report['conversations']:,}" if shown < report["conversations"] else "")
            + "): language, stack, models, outcome</summary>"
            + table(["conversation", "language", "stack", "NLU bundle", "turns", "engine",
                     "expected", "disagreement"], rows, numeric=(4, 7)) + "</details>")
    return section("conversations", "Conversations", body,
                   "All of them, with the same columns and more, in conversations.jsonl beside "
                   "this file.")


def _kpis(report: dict) -> str:
    kpis = report.get("service_kpis")
    if not kpis:
        return ""
    total = kpis["total"]
    keys = [k for k in total if k != "team"]
    rows = [[esc("all")] + [esc(_fmt(total[k])) for k in keys]]
    rows += [[esc(t.get("team"))] + [esc(_fmt(t.get(k))) for k in keys] for t in kpis["by_team"]]
    return section("kpis", f"The service's KPIs, {kpis['start']} to {kpis['end']}",
                   table(["team"] + [esc(k.replace("_", " ")) for k in keys], rows,
                         numeric=tuple(range(1, len(keys) + 1))))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "–" if value is None else str(value)


SECTIONS = (("summary", "Summary"), ("models", "Models"), ("input", "Input"),
            ("languages", "Per language"), ("confusion", "Confusion"),
            ("reliability", "Reliability"), ("reasons-over-time", "Reasons by day"),
            ("handoffs", "Handoffs"), ("disagreements", "Disagreements"),
            ("transcripts", "Transcripts"), ("conversations", "Conversations"))


def render_html(report: dict) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script)."""
    nav = "".join(f'<a href="#{i}">{esc(t)}</a>' for i, t in SECTIONS)
    if report.get("service_kpis"):
        nav += '<a href="#kpis">KPIs</a>'
    body = "".join((_summary(report), _models(report), _input(report), _languages(report),
                    _confusion(report), _reliability(report), _reasons_over_time(report),
                    _handoffs(report), _disagreements(report), _transcripts(report),
                    _conversations(report), _kpis(report)))
    meta = json.dumps({"conversations": report["conversations"], "turns": report["turns"]})
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>tierline: conversation evaluation</title><style>{CSS}</style></head><body>"
            f"<header><h1>Conversation evaluation</h1><p>{esc(report['input'])} · "
            f"{esc(report.get('input_format', ''))} · {report['conversations']:,} conversations, "
            f"{report['turns']:,} customer turns · {esc(report['engine'])} engine</p></header>"
            f"<nav>{nav}</nav><main data-report='{esc(meta)}'>{body}</main></body></html>")
