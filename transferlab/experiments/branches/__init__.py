"""Hand-built pipeline vs end-to-end network, trained on the same data over a data-size sweep."""
