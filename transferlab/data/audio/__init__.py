"""The audio track: offline speech synthesis, users' audio folders, features and detection data."""
