"""Tornado request handlers: thin envelopes around the pipeline (DESIGN.md "Handlers are thin").

`base` holds `BaseHandler` (injection, access, error rendering) and the application plumbing;
`misc` the small public routes; `management` the `/v0/management` API.
"""
