"""Stage 6, feedback: the feedback store, its guards and retrain trigger, export to training data, badcase import, monitoring."""
