"""Tables a signal type keeps beside ``bank_items``, one module per type that has any (named
after the type, owned by its adapter in ``node/signals``). Each module lists ``MIGRATIONS`` in
the node's one version sequence; :mod:`..migrations` gathers them, so a new type adds its module
here and edits no shared list."""
