"""Operations around the pipeline: inbox intake, the model registry and promotion, lineage, prediction and
the retrain transaction. Library code: the CLI and the Prefect flows both call it; it never imports stages
or flows, and never names a DVC stage (tracks.model_stage reads dvc.yaml). The modules the flows import load
no torch: intake, promotion and predict are imported where a step needs them."""
