"""Records and text formats: the typed rows that flow between stages, and the exact texts models see.

    experience   Scene, Turn, Experience (Character-LLM's reconstructed experiences)
    apc          persona statements, queries, relevance / NLI rows, preference pairs (APC's files)
    charllm      Character-LLM's prompted text format (meta prompt, `Role (action): content<|eot|>`)
    persona      the chat persona system prompt agents are served with and chat rows are trained on
    sft          training rows (chat messages) made from experiences in either format
"""
