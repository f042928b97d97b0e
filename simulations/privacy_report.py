"""``privacy_audit.md`` and a self-contained ``privacy_audit.html``: per-site epsilon, the
attacks' figures, a log-scale ROC plot and a plain-language verdict per site."""

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are written headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from server.privacy_audit import VERDICT_FPR  # noqa: E402
from server.records import AuditRecord  # noqa: E402
from sites.intervals import resolves  # noqa: E402
from sites.protocol import AUDIT_ATTACKS, LOW_FPRS, AuditReply, Interval  # noqa: E402

from .formatting import MISSING, fmt, table_header, table_row  # noqa: E402

COLUMNS = ("epsilon", "members / non-members", "smallest FPR", "loss AUC [95% CI]", "reference AUC [95% CI]",
           "LiRA AUC [95% CI]", "TPR at 1% FPR [95% CI]", "TPR at 0.1% FPR [95% CI]", "advantage",
           "marked AUC [95% CI]", "unmarked AUC [95% CI]", "exposure")


def with_interval(figure: Interval | None) -> str:
    """``value [low, high]`` of a figure and its interval, or :data:`MISSING`."""
    if figure is None:
        return MISSING
    return f"{fmt(figure.value)} [{fmt(figure.low)}, {fmt(figure.high)}]"


def _best(figures: list[Interval]) -> str:
    """The figure whose interval's lower end is highest (the stronger attack's), with its interval."""
    return with_interval(max(figures, key=lambda figure: figure.low, default=None))


def _low_fpr(reply: AuditReply, name: str) -> str:
    """TPR at a low FPR with its interval, marked ``not resolved`` where the non-members cannot
    show that FPR (then it is a lower bound the verdict does not use)."""
    figure = _best([result.overall.tpr[name] for result in reply.attacks.values()])
    return figure if resolves(LOW_FPRS[name], reply.n_non_members) else f"{figure} not resolved"


def _auc(reply: AuditReply, attack: str) -> Interval | None:
    return reply.attacks[attack].overall.auc if attack in reply.attacks else None


def site_rows(audit: AuditRecord) -> list[list[str]]:
    """One row of :data:`COLUMNS` per audited site; rates and the marked/unmarked AUCs are the
    stronger attack's (the higher lower end), each with its 95 % interval."""
    rows = []
    for site, audited in audit.sites.items():
        reply, results = audited.reply, audited.reply.attacks.values()
        rows.append([site, "no DP" if reply.epsilon is None else fmt(reply.epsilon),
                     f"{reply.n_members} / {reply.n_non_members}", fmt(reply.min_resolvable_fpr),
                     *(with_interval(_auc(reply, attack)) for attack in AUDIT_ATTACKS),
                     _low_fpr(reply, "1pct"), _low_fpr(reply, "0.1pct"),
                     fmt(max(result.overall.advantage for result in results)),
                     _best([result.marked.auc for result in results if result.marked is not None]),
                     _best([result.unmarked.auc for result in results if result.unmarked is not None]),
                     audited.verdict.level])
    return rows


def plot_roc(audit: AuditRecord) -> bytes:
    """PNG of every site's ROC for each attack it ran, log-scaled, with chance as the diagonal."""
    fpr = np.asarray(audit.fpr_grid)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for site, audited in audit.sites.items():
        for attack, style in zip(AUDIT_ATTACKS, ("-", "--", "-.")):
            if attack in audited.reply.attacks:
                ax.plot(fpr, np.maximum(audited.reply.attacks[attack].overall.roc, 1e-3), style,
                        label=f"{site} {attack}")
    ax.plot(fpr, fpr, ":", color="grey", label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1.05), xlabel="false-positive rate",
           ylabel="true-positive rate", title="membership inference ROC (log scale)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


_INTRO = ("Each site that trained attacked the final global model on its own data: its training patients "
          "(members) against as many patients of the same distribution the federation never trained on "
          "(non-members). The loss attack calls low-loss patients members; the reference attack first "
          "subtracts the loss of reference models trained on fresh data of the site's distribution; LiRA "
          "(with scenario.audit.attack=lira) asks how far above the reference models' confidence, in their "
          "spread, the final model's lies. AUC 0.5 and TPR = FPR are chance. Brackets: 95 % confidence "
          "intervals (DeLong for AUC, Clopper-Pearson for TPR). With n non-members the smallest FPR a "
          "threshold can show is 1/n: a TPR at a lower FPR is 'not resolved'. Marked: patients whose images "
          "carry identifying markers.")

_LEVELS = (f"Exposure is claimed only where the intervals support it: high when an attack's AUC is at least "
           f"0.65 (its interval's lower end) or, with 1/n at most {VERDICT_FPR:.0%}, its TPR at {VERDICT_FPR:.0%} "
           f"FPR at least 15 %; moderate when an AUC interval lies above 0.5; low when every AUC interval lies "
           f"below 0.55 and, with {VERDICT_FPR:.0%} FPR resolved, every TPR interval there below 5 %; "
           f"inconclusive otherwise.")


def _scope(audit: AuditRecord) -> list[str]:
    """With DP, what epsilon covers and what left the sites outside it, as two sentences."""
    scope = audit.dp_scope
    if not scope:
        return []
    return [f"Epsilon covers: {'; '.join(scope['covered'])}.",
            f"Outside epsilon, each site released: {'; '.join(scope['outside'])}."]


def write_privacy_audit(run_dir: Path, audit: AuditRecord) -> None:
    """Write ``privacy_audit.md`` (with ``privacy_audit_roc.png``) and ``privacy_audit.html``."""
    png = plot_roc(audit)
    (run_dir / "privacy_audit_roc.png").write_bytes(png)
    rows = site_rows(audit)
    delta = audit.delta
    guarantee = f"(epsilon, delta = {delta:g})" if delta is not None else "(no differential privacy)"
    scope = _scope(audit)
    lines = ["# Privacy audit", "", _INTRO, "", _LEVELS, "", f"Guarantee per site: {guarantee}.", "",
             *(line for item in scope for line in (item, "")),
             *table_header(("site", *COLUMNS))]
    lines += [table_row(row) for row in rows]
    lines += ["", "## Verdicts", ""]
    lines += [f"- **{site}** ({audited.verdict.level}): {audited.verdict.explanation}"
              for site, audited in audit.sites.items()]
    lines += ["", "![ROC](privacy_audit_roc.png)", ""]
    (run_dir / "privacy_audit.md").write_text("\n".join(lines))

    cells = "".join(f"<th>{html.escape(c)}</th>" for c in ("site", *COLUMNS))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    verdicts = "".join(f"<li class='{audited.verdict.level}'><b>{html.escape(site)}</b> ({audited.verdict.level}): "
                       f"{html.escape(audited.verdict.explanation)}</li>" for site, audited in audit.sites.items())
    image = base64.b64encode(png).decode()
    (run_dir / "privacy_audit.html").write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Privacy audit</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}li.high{{color:#a00}}li.moderate{{color:#a60}}
li.inconclusive{{color:#666}}</style>
</head><body>
<h1>Privacy audit</h1><p>{html.escape(_INTRO)}</p><p>{html.escape(_LEVELS)}</p>
<p>Guarantee per site: {html.escape(guarantee)}.</p>{"".join(f"<p>{html.escape(item)}</p>" for item in scope)}
<table id="sites"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>
<h2>Verdicts</h2><ul id="verdicts">{verdicts}</ul>
<h2>ROC</h2><img id="roc" alt="membership inference ROC" src="data:image/png;base64,{image}">
<script>
// Lets a headless browser confirm the page rendered: how many figures decoded, how many table rows.
window.addEventListener("load", () => {{
  const figures = [...document.images].filter(img => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.figuresRendered = figures;
  document.body.dataset.rowsRendered = document.querySelectorAll("#sites tbody tr").length;
}});
</script>
</body></html>
""")
