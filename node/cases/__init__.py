"""From match to decision: cases, derivative cases and the policy that decides them."""
