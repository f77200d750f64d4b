"""Everything that talks to Firestore, Cloud Storage, Gemini and CloudEvents."""
