"""axe-core, run inside the browser page under test (the vendored tests/assets/axe-core)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

AXE = Path(__file__).parent / "assets" / "axe-core" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"  # 4.14.1


def axe_source() -> str:
    data = AXE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == AXE_SHA256, "tests/assets/axe-core changed"
    return data.decode("utf-8")


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """Every WCAG 2.x A/AA (and best-practice) rule axe finds violated on the current page."""
    driver.execute_script(axe_source())
    driver.set_script_timeout(120)
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}))))
          .catch(e => done([{id: 'axe-error', help: String(e), nodes: []}]));
        """
    )


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['id']} ({v.get('impact')}): {v['help']}\n    " + "\n    ".join(v["nodes"][:5])
        for v in violations
    )
