"""Training: the loss and its assigner, a short loop for proxies, and the full trainer."""
