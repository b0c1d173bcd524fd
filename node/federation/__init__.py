"""The federation: publishing the blinded index, answering peers, querying them, replication."""
