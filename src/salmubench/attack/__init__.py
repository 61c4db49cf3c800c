"""Relearning attacks: does the forgetting last?

An unlearned model can look clean on the leaderboard and keep the association underneath.
`salmubench attack` tries to bring it back the way published attacks do: fine-tuning on
half of the forget personas (scored on the other half), on retain data alone, or on the
forget faces with their non-sensitive captions; or rounding the weights to a lower
precision. The Clean model, which never saw the data, undergoes the same attack with the
same budget, and the score is the recovery beyond it (`recovery`).
"""
