"""Operations around the project, run from the repository root: packing for a lent GPU machine
(`python -m ops.gpu_pack`, then the pack's session.sh) and putting the app on a Hugging Face Space
(`python -m ops.deploy_space`)."""
