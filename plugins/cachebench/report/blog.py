"""Blog-ready snippets: per question, its decision figure and a one-sentence caption.

``blog/<question>.md`` in the run's folder, beside ``blog/<question>.png`` (2x, for
screens) and ``.pdf`` (print): copy the folder next to a post and paste the snippet.
The caption says what was compared, the answer and its interval, from the decisions
data (:class:`~cachebench.report.decision.Decisions`), as the report's summary does.
"""

from __future__ import annotations

from pathlib import Path

from cachebench.report import plots
from cachebench.report.decision import Answer, Decisions, Section

FOLDER = "blog"
#: Answers a caption names before it points at the figure for the rest.
CAPTION_ANSWERS = 4


def _clause(a: Answer) -> str:
    text = f"{a.subject}: {a.answer}"
    if a.by_how_much:
        text += f", {a.by_how_much}"
    if a.interval:
        text += f" ({a.interval})"
    return text


def caption(section: Section) -> str:
    """One sentence: the question's answers, each with its interval."""
    answers = list(section.answers)
    clauses = [_clause(a) for a in answers[:CAPTION_ANSWERS]]
    more = len(answers) - CAPTION_ANSWERS
    if more > 0:
        clauses.append(f"{more} more comparison{'s' if more != 1 else ''} in the figure")
    return f"{section.title}: " + "; ".join(clauses) + "."


def snippet(section: Section, image: str) -> str:
    return f"![{section.title}]({image})\n\n*{caption(section)}*\n"


def write_snippets(run_dir: Path, decisions: Decisions) -> dict[str, str]:
    """``blog/<key>.md`` (with its figure, PNG + PDF) for every question with a
    comparison; returns their paths by ``blog_<key>_<md|png|pdf>``."""
    paths: dict[str, str] = {}
    folder = Path(run_dir) / FOLDER
    for section in decisions.sections:
        if not (section.rows and section.answers):
            continue
        figures = plots.save(plots.decision_chart(decisions, section.key), folder, section.key)
        md = folder / f"{section.key}.md"
        md.write_text(snippet(section, f"{section.key}.png"))
        paths[f"blog_{section.key}_md"] = str(md)
        paths |= {
            f"blog_{section.key}_{ext}": figures[f"fig_{section.key}_{ext}"]
            for ext in ("png", "pdf")
        }
    return paths
