from fake_engine import main

main("vllm.entrypoints.openai.api_server")
