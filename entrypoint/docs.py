"""Render the README's generated tables from the code that defines them.

python -m entrypoint.docs          # rewrite README.md in place
python -m entrypoint.docs --check  # exit 1 when README.md is stale (CI)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from .errors import OTHER_EXIT_CODES, all_error_classes
from .model import families
from .settings import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    rows = ["| Variable | Default | Example | Meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        default = "**required**" if setting.required else (f"`{setting.default}`" if setting.default else "—")
        meaning = setting.help + (
            f" Secret: also read from `{setting.name}_FILE`, never printed." if setting.secret else ""
        )
        rows.append(f"| `{setting.name}` | {default} | `{setting.example}` | {meaning} |")
    return "\n".join(rows)


def exit_codes_table() -> str:
    rows = ["| Exit code | Error | When |", "|---|---|---|"]
    entries = [(cls.exit_code, f"`{cls.__name__}`", cls.summary) for cls in all_error_classes()]
    entries += list(OTHER_EXIT_CODES)
    rows += [f"| {code} | {name} | {summary} |" for code, name, summary in sorted(entries)]
    return "\n".join(rows)


def families_table() -> str:
    """What TOOL_CALL_PARSER=auto and REASONING_PARSER=auto turn on, from model.families.FAMILIES."""

    def names(parsers: Mapping[str, str], engine: str) -> str:
        return f"`{parsers[engine]}`" if engine in parsers else "—"

    rows = [
        "| Family | model_type | Chat template must show | Tools: vLLM | Tools: sglang | Reasoning: vLLM | "
        "Reasoning: sglang |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in families.FAMILIES:
        # A pipe would end the table cell, even inside backticks.
        markers = ", ".join(f"`{marker}`".replace("|", "\\|") for marker in family.template_has) or "—"
        rows.append(
            f"| {family.name} | {', '.join(f'`{kind}`' for kind in family.model_types)} | {markers} | "
            f"{names(family.tools, 'vllm')} | {names(family.tools, 'sglang')} | "
            f"{names(family.reasoning, 'vllm')} | {names(family.reasoning, 'sglang')} |"
        )
    return "\n".join(rows)


SECTIONS = {"settings": settings_table, "exit-codes": exit_codes_table, "families": families_table}


def render(text: str) -> str:
    for name, build in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        match = pattern.search(text)
        if not match:
            raise SystemExit(f"README.md lacks the <!-- {name}:begin --> / <!-- {name}:end --> markers")
        text = text[: match.start()] + match.group(1) + build() + "\n" + match.group(2) + text[match.end() :]
    return text


def main(argv: list[str]) -> int:
    current = README.read_text()
    fresh = render(current)
    if "--check" in argv:
        if fresh != current:
            print("README.md is stale: run `python -m entrypoint.docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
