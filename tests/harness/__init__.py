"""Test harness: real local emulators, a Gemini stub and CloudEvent builders for worker tests."""
