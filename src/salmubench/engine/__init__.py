"""The one step engine train and unlearn share: `loop` (the step loop), `optim`
(optimiser, schedule, precision), `state` (resumable checkpoints, the partial folder),
`dist` (launcher-independent DDP), `pools` (in-memory pools and the batch plan), `loss`
(the CLIP contrastive objective)."""
