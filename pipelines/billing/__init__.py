"""The billing run around the stages: which days and shards to compute, the checks that gate
publishing, where steps execute, and Dagster's instance in the home."""
