"""loraflow: raw instruction data to a fine-tuned, evaluated, versioned and served LLM."""
__version__ = "0.1.0"
