"""drumlm: Language Models are Drummers (Zhang, Callison-Burch; arXiv 2301.01162). Not registered yet: see README.md."""
