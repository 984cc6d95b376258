"""Run-directory files: episodes (step 1) and their validation."""
