"""Quality figures: data sets, metrics, ANN recall, and the evaluation runs."""
