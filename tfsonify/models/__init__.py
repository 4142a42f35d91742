"""Model families built in Keras 3 (each module builds one family and its weight import)."""
