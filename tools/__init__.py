"""Developer tools: the native launcher (`make run`, the tests) and one-off generators."""
