"""The core: model family, slots compiler, ReLU nets, decoders, lemmas, tasks, domains, samplers,
parameter counts, dtype policy, input errors. Imports nothing above it."""
