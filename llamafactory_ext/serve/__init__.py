"""SERVE wing: one resident base model and its LoRA adapters answering one prompt side by side (webapp.py)."""
