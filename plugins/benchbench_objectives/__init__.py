"""Built-in score-matching objectives, declared once; each backend package implements the losses."""
