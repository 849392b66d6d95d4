"""The compile stage: workload + op costs + collective flows -> the timed program both engines run."""
