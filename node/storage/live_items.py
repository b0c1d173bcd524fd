"""Which bank items are live: the one definition every query of live items is built from.

A bank item is **live** while it is neither withdrawn nor expired; it is **published** (in
the node's blinded index) while it is live in an enabled, shared bank. Each signal type's
adapter (``node/signals``) builds its queries from these fragments, which filter the rows of
``bank_items i`` (joined with ``banks b`` where it says so) and take their bound values in the
order written.
"""

from __future__ import annotations

# Not withdrawn: a withdrawn row stays as a tombstone and never matches again.
NOT_WITHDRAWN = "i.withdrawn_at IS NULL"
# Live: not withdrawn and not expired. One "?": now.
LIVE = NOT_WITHDRAWN + " AND (i.expires_at IS NULL OR i.expires_at > ?)"
# Published: of one signal type, live, in an enabled shared bank. Values: signal type, now.
PUBLISHED = "i.signal_type = ? AND " + LIVE + " AND b.enabled = 1 AND b.shared = 1"
