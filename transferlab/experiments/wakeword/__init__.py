"""The audio track's experiment: wake-word detection metrics, the in-domain ceiling, the sweep's evaluation and claims."""
