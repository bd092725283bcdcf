"""The verification engine: constructions and their catalog, estimators, records, the results
store, lemma checks. Imports only the core."""
