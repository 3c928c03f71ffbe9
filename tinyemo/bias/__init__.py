"""bias"""
