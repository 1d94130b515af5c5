"""Carriers: the phone side of a call (webhooks, media legs, REST control)."""
