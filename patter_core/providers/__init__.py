"""Pipeline providers: speech-to-text, language models and text-to-speech."""
