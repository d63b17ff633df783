from fake_engine import main

main("sglang.launch_server")
