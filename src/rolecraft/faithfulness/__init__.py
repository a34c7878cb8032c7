"""Persona faithfulness (APC): discriminators, the APC score, retrieval of persona facts.

    discriminators   relevance P_g(s, q) and NLI (P_c, P_n, P_e)(s, q, r): trained classifiers (inference)
    judge            an LLM as either discriminator, asking the questions in `questions`
    apc              APC(q, r | S) = Σ_i P_g·P_e + (1 − P_g)·(1 − P_c), batched; multi-turn; ΔAPC
    retrieval        FactRetriever: top-k persona facts by relevance, with an embedding pre-filter

Training the classifiers is `rolecraft.train.discriminators`.
"""
