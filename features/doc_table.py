"""Print the feature table of docs/features.md from the catalog:

.venv/bin/python -m features.doc_table
"""

from __future__ import annotations

from features.definitions import feature_docs


def table() -> str:
    """The markdown table: feature, window, meaning."""
    lines = ["| feature | window | meaning |", "|---|---|---|"]
    for name, window, meaning in feature_docs():
        lines.append(f"| `{name}` | {window} | {meaning} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
