"""mmllm"""
