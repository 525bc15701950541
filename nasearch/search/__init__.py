"""Architecture search: experiment config, trial execution, storage and results."""
